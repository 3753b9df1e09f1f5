"""Developer tools: run the stack under mocks, draw its graph, report resource totals."""

"""What a change does to the stacks: `python -m tools.diff` (or `make diff`).

- snapshot.py: renders of the base (a git ref, rendered by its own code) and of the head (this working tree);
- compare.py: the field-level differences of two renders (deepdiff), and which of them replace or delete;
- report.py: the summary and the field lines, as plain text or Markdown;
- policy.py: the policy pack's checks over the head's stacks (on the mock graph);
- comment.py: the one pull-request comment (hidden marker, counts, flags, details, policy, engine, run link);
- post.py: finds that comment by its marker and edits it, or posts it (gh api; standard library only);
- engine.py: the real plan: `pulumi up` of the base on a throw-away kwok cluster, `pulumi preview --diff` of the head;
- example.py: README's example comment, from the committed fixture pair.
"""

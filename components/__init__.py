"""ambient-mesh components: one Pulumi ComponentResource per concern of the Istio ambient tutorial."""

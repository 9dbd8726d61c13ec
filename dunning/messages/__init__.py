"""What a message says (docs/templates.md): ``rendering`` (the context and the sandboxed
rendering of a step's template, money and date formatting), ``variants`` (A/B wording and
its report) and ``history`` (the customer's payment history a message may quote). Below the
channels and the engine, above the models: it never imports a channel, the engine or a
customer-facing view."""

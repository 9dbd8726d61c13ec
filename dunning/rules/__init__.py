"""The rules of dunning, pure: plain values in, plain values out.

Nothing here touches the database, the clock or any other I/O: these modules import only
the standard library, other ``dunning.rules`` modules and Django's translation functions
(for the texts of reasons shown to people). They sit below the models, so every other
layer may use them (docs/architecture.md, "The rules").

* :mod:`~dunning.rules.schedule`: ``decide`` (what a run does with a case today), the
  promise, pause and dispute rules;
* :mod:`~dunning.rules.effects`: ``effects`` (what a decision does to a case);
* :mod:`~dunning.rules.compliance`: quiet hours, calendars, frequency caps, Regulation F;
* :mod:`~dunning.rules.plans`: when a payment plan is broken or completed.
"""

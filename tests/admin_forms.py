"""POST data the policy change form needs besides the policy's own fields and steps."""

# The compliance fields (JSON shown as "{}"/"[]" by the form) and the payment retry
# steps' inline (no row submitted: existing retry steps are left alone).
POLICY_FORM_EXTRAS = {
    "quiet_hours": "{}",
    "frequency_caps": "{}",
    "weekend_days": "[]",
    "holidays": "[]",
    "retry_steps-TOTAL_FORMS": "0",
    "retry_steps-INITIAL_FORMS": "0",
    "retry_steps-MIN_NUM_FORMS": "0",
    "retry_steps-MAX_NUM_FORMS": "1000",
}

"""Follow-up reading: a prior study beside the current one, nodules matched across time, growth."""

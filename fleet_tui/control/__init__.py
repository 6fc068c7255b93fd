"""The only code that types into panes, attaches, watches or pipes them (`panes`), the operator
actions on top of it (`actions`: a fresh target, audit first), and the audit log (`audit`)."""

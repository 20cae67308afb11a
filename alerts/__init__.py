"""Alert rules (files operators edit and review in git) and their evaluation, without I/O."""

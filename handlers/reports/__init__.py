"""Pure report builders over a session: digest, official export, statistics, imports."""

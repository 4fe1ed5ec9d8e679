"""For the organisation's own people and systems: the local admin API (api, routes), its web dashboard, and the
CLI's client of it (client). Nothing is imported here, so that the CLI's client stays light to load."""

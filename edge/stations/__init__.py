"""The site's charging stations in domain words (model), what the core asks of them (control)."""

"""Imported by dev_app.py: editing it must reload the app too."""
GREETING = "helper 1"

"""Headless commands (``python main.py <command>``): thin faces over ``core`` calls."""

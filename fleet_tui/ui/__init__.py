"""The Textual dashboard: app, screens, dialogs, widgets, palette, crash handling."""

"""What leaves the system for people: metrics, vintages, weekly exports, file formats, calendar, page."""

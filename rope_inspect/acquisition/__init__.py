"""acquisition part of the data flow (see DESIGN.md)."""

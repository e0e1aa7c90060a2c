"""The équipe pluridisciplinaire's printed documents, as definitions (the catalogue's format,
a catalogue of their own: they are printed for the EP, never filled in by a référent)."""

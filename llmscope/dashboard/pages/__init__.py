"""The dashboard's pages: each module renders one path from the engine and the view state."""

"""The schedule: day and week views, booking, and the waiting room."""

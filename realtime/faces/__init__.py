"""Face detection, landmarks, tracking and alignment."""

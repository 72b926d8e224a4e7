"""The webhook inbox: every verified event is stored before it is answered, then folded."""

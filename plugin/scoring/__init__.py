"""The customer score, 0–100, from weighted and explainable factors."""

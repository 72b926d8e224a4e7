"""One ordered stream of everything that happened to a customer."""

"""The Saleor app protocol: manifest, registration, JWKS/JWS verification, API client."""

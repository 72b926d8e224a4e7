"""The app's own GraphQL API (strawberry): one schema for dashboard pages and developers.

Importing this package is cheap (models only); the schema lives in `plugin.api.schema`.
"""

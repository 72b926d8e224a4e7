"""Pages shown inside the Saleor dashboard (iframes) and the app's public pages.

A dashboard page is a shell (`routes.shell`, no data) that runs the AppBridge handshake
in `static/bridge.js`, then a fragment (`views/`) rendered on the server from the GraphQL
API with the dashboard's token: HTML with SVG charts (`charts/`). `pages.PAGES` lists
every page; `framing` decides who may frame them.
"""

"""Pages shown inside the Saleor dashboard (iframes) and the app's public pages."""

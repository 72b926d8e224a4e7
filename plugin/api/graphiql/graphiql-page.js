// GraphiQL against this app's /graphql, every asset served by the app itself (CSP: 'self').
// Send `Authorization: Bearer <token>` in the Headers tab; introspection needs none.
(function () {
  var fetcher = GraphiQL.createFetcher({ url: window.location.origin + "/graphql" });
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultEditorToolsVisibility: true,
      shouldPersistHeaders: false,
    })
  );
})();

// The API reference page: Swagger UI showing this server's own /openapi.json. No request leaves
// the origin: the online validator badge is off, and nothing else is fetched.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  docExpansion: "list",
  defaultModelsExpandDepth: 0,
  displayRequestDuration: true,
  tryItOutEnabled: false,
});

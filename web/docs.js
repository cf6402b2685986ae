/* Offline OpenAPI docs: Swagger UI from the swagger-ui-bundle package (no CDN, no inline script).
 *
 * FastAPI publishes OpenAPI 3.1, but the bundled Swagger UI (4.x) only renders 3.0 ("Unable to render this
 * definition"). So the spec is fetched here and, when it is 3.1, rewritten to the 3.0 equivalent
 * (anyOf [..., null] -> nullable, examples: [...] -> example, const -> enum) before Swagger UI sees it. */
"use strict";

const SPEC_URL = "/openapi.json";

function toOpenApi30(node) {
  if (Array.isArray(node)) return node.map(toOpenApi30);
  if (!node || typeof node !== "object") return node;
  const out = {};
  for (const [key, value] of Object.entries(node)) out[key] = toOpenApi30(value);

  for (const key of ["anyOf", "oneOf"]) {
    if (!Array.isArray(out[key])) continue;
    const rest = out[key].filter((schema) => !(schema && schema.type === "null"));
    if (rest.length === out[key].length) continue;
    delete out[key];
    out.nullable = true;
    if (rest.length === 1 && rest[0].$ref) out.allOf = rest;
    else if (rest.length === 1) Object.assign(out, rest[0], { nullable: true });
    else out[key] = rest;
  }
  if (Array.isArray(out.type)) {
    const types = out.type.filter((t) => t !== "null");
    if (types.length < out.type.length) out.nullable = true;
    out.type = types[0];
  }
  if (Array.isArray(out.examples)) {
    if (out.examples.length && !("example" in out)) out.example = out.examples[0];
    delete out.examples;
  }
  if ("const" in out && !("enum" in out)) {
    out.enum = [out.const];
    delete out.const;
  }
  return out;
}

function start(options) {
  window.ui = SwaggerUIBundle({
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null, // the default badge would call an online validator
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "BaseLayout",
    ...options,
  });
}

window.addEventListener("DOMContentLoaded", async () => {
  try {
    const response = await fetch(SPEC_URL, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const spec = await response.json();
    if (typeof spec.openapi === "string" && spec.openapi.startsWith("3.1")) {
      const converted = toOpenApi30(spec);
      converted.openapi = "3.0.3";
      start({ spec: converted });
      return;
    }
    start({ spec });
  } catch {
    start({ url: SPEC_URL }); // let Swagger UI report the problem itself
  }
});

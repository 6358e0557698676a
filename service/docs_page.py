"""The page at ``/``: Swagger UI under the API's own title, in the browser tab and on the page.

BentoML 1.4 serves its own page there (``DEFAULT_INDEX_HTML`` in bentoml/_internal/server/http_app.py):
the tab reads "BentoML Prediction Service", its index.css hides the document's title
(``.info .main .title {visibility: hidden}``, only the version badges stay visible), and it loads
Google Tag Manager. This page loads the same Swagger UI files BentoML serves under /static_content/
(they read /docs.json), without those three.
"""

from __future__ import annotations

import html

_STATIC = "./static_content"


def index_html(title: str) -> bytes:
    return f"""<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="UTF-8">
    <title>{html.escape(title)}</title>
    <link rel="stylesheet" type="text/css" href="{_STATIC}/swagger-ui.css" />
    <link rel="icon" type="image/png" href="{_STATIC}/favicon-light-32x32.png" sizes="32x32" />
    <style>body {{ margin: 0; background: #fafafa; }} .topbar {{ display: none; }}</style>
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="{_STATIC}/swagger-ui-bundle.js" charset="UTF-8"></script>
    <script src="{_STATIC}/swagger-ui-standalone-preset.js" charset="UTF-8"></script>
    <script src="{_STATIC}/swagger-initializer.js" charset="UTF-8"></script>
  </body>
</html>
""".encode()

"""The edge's HTTP side, in one home: the local API (edgectl's), the web page, and what
monitoring scrapes. One direction of imports: edge/web -> the domain, never the reverse.

- server.py   LocalApi: the aiohttp app, its token/session check, and ROUTES, the one list of
              route modules. To add routes, write a module with a class taking the SiteView and
              returning `routes()`, then add ONE line to ROUTES in server.py.
- site.py     SiteView, the narrow interface the Edge hands over (a Protocol).
- common.py   the one JSON encoder, error answers, query parsing, `public` for token-free routes.
- api/        the /api/v1 routes edgectl uses (paths and answers documented in docs/local-api.md).
- page/       the installer's web page: login, session cookie, CSRF, live updates (docs/web-page.md).
- static/     the page's plain HTML, JS and CSS, shipped as package data (no build step on the box).

edge/app.py builds the Edge and hands it to LocalApi; nothing under edge/ but app.py imports this package.
"""

"""The browser side: the JavaScript client (`bugstream.js`) and the live board at `/`.

Static files only, no build step; `routes.web_router()` serves them from the package.
"""

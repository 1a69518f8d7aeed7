"""The console's blueprint, shared by the view modules."""

from flask import Blueprint

bp = Blueprint("console", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static/console")

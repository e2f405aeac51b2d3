"""Unbound Flask extension objects; bound to an app only inside create_app()."""

from __future__ import annotations

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    """Declarative base shared by every model of the tool."""


db = SQLAlchemy(model_class=Base)

"""WTForms for the portal. Every form is a FlaskForm, so every POST carries a CSRF token.

Validation here is only about the shape of the input; whether the credentials are right is the
users service's business, so the rules live in one place.
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, Length

from portal.services.accounts.users import EMAIL_MAX, PASSWORD_MAX


class LoginForm(FlaskForm):
    """Email and password. `next` rides along as a hidden field so a redirect to the login
    page can return the user where they were going (checked to be a local path)."""

    email = StringField(
        "Email",
        validators=[DataRequired(message="Enter your email address."), Length(max=EMAIL_MAX)],
        render_kw={"autocomplete": "username", "autofocus": True, "inputmode": "email"},
    )
    password = PasswordField(
        "Password",
        validators=[DataRequired(message="Enter your password."), Length(max=PASSWORD_MAX)],
        render_kw={"autocomplete": "current-password"},
    )
    remember = BooleanField("Keep me signed in")
    next = HiddenField()
    submit = SubmitField("Sign in")


class CliApproveForm(FlaskForm):
    """Approve a command-line sign-in: the code rides along hidden, the button is the consent."""

    code = HiddenField(validators=[DataRequired(), Length(max=64)])
    submit = SubmitField("Sign in the command-line client")

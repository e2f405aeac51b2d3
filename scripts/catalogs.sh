#!/usr/bin/env bash
# Refresh the message catalogs after adding or changing text in a template or in Python:
# extract every _()/gettext/ngettext/N_ message into messages.pot, then merge it into the
# Russian and Kazakh .po files (new entries arrive empty; tests/test_i18n.py fails until they
# are translated). The .po files are the only source: the tool compiles them when it loads.
set -euo pipefail
cd "$(dirname "$0")/.."
PYBABEL=${PYBABEL:-.venv/bin/pybabel}
"$PYBABEL" extract -F babel.cfg -k N_ -k gettext -k ngettext:1,2 --no-location --sort-output --width 100 \
  --project lti-proctor --omit-header -o lti_proctor/translations/messages.pot .
for lang in ru kk; do
  po="lti_proctor/translations/$lang/LC_MESSAGES/messages.po"
  if [ -f "$po" ]; then
    "$PYBABEL" update -i lti_proctor/translations/messages.pot -d lti_proctor/translations \
      -l "$lang" --no-fuzzy-matching --ignore-obsolete --width 100
  else
    "$PYBABEL" init -i lti_proctor/translations/messages.pot -d lti_proctor/translations -l "$lang"
  fi
done

"""English and Spanish: the language comes from the switch (`?lang=`, remembered in a cookie), else
from the browser's Accept-Language. Messages are written in English in the templates (`_()`); the
Spanish catalog below maps each one (tests/test_console.py checks that none is missing)."""

from __future__ import annotations

from flask import Flask, g, request

LANGUAGES = {"en": "English", "es": "Español"}
DEFAULT = "en"
COOKIE = "allies_lang"
COOKIE_SECONDS = 365 * 24 * 3600


def init_app(app: Flask) -> None:
    app.jinja_env.add_extension("jinja2.ext.i18n")
    # newstyle: `_("... %(name)s", name=value)` escapes the value like any other template value.
    app.jinja_env.install_gettext_callables(gettext, ngettext, newstyle=True)


def choose_language() -> str:
    asked = request.args.get("lang") or request.cookies.get(COOKIE)
    if asked in LANGUAGES:
        return asked
    return request.accept_languages.best_match(LANGUAGES, default=DEFAULT)


def remember_language(response) -> None:
    """The switch's choice, kept for the next pages."""
    if request.args.get("lang") in LANGUAGES:
        response.set_cookie(
            COOKIE, g.lang, max_age=COOKIE_SECONDS, path="/console", httponly=True, samesite="Strict"
        )


def gettext(message: str) -> str:
    return CATALOGS.get(g.get("lang", DEFAULT), {}).get(message, message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return gettext(singular if n == 1 else plural)  # English and Spanish share the plural rule


# Values from the database shown translated (the audit's actions and outcomes).
SHOWN_VALUES = (
    "credentials.set",
    "store.change",
    "success",
    "rejected",
    "unauthorized",
    "rate_limited",
    "error",
    "conflict",
    "credentials.restore",
)

SPANISH = {
    "Allies support console": "Consola de soporte de aliados",
    "Skip to content": "Ir al contenido",
    "Sections": "Secciones",
    "Overview": "Resumen",
    "Allies": "Aliados",
    "Log triage": "Análisis de logs",
    "Language": "Idioma",
    "Sign out": "Cerrar sesión",
    "Sign in": "Iniciar sesión",
    "Use the token you use with the API (ALLIES_API_TOKENS). It is checked once; the console then keeps a session for 8 hours.": "Use el token con el que usa la API (ALLIES_API_TOKENS). Se comprueba una vez; luego la consola mantiene la sesión durante 8 horas.",
    "That token is not valid.": "Ese token no es válido.",
    "Token": "Token",
    "The database is not answering: the figures below are missing. The console works again as soon as it is back.": "La base de datos no responde: faltan las cifras de abajo. La consola vuelve a funcionar en cuanto vuelva.",
    "Figures": "Cifras",
    "stores": "tiendas",
    "with credentials set": "con credenciales",
    "answering": "responde",
    "unavailable": "no disponible",
    "database": "base de datos",
    "Find an ally by id or name": "Buscar un aliado por id o nombre",
    "Search": "Buscar",
    "Tags in use (case 1)": "Etiquetas en uso (caso 1)",
    "From sql/01_tags_distribution.sql, the same query as `allies tags`.": "De sql/01_tags_distribution.sql, la misma consulta que `allies tags`.",
    "The numbers as a table": "Los números en una tabla",
    "Tag": "Etiqueta",
    "Stores": "Tiendas",
    "Stores per tag": "Tiendas por etiqueta",
    "Recent events": "Eventos recientes",
    "Credential writes, refusals and store changes, newest first": "Escrituras de credenciales, rechazos y cambios de tiendas, los más recientes primero",
    "When": "Cuándo",
    "Who": "Quién",
    "Ally": "Aliado",
    "What": "Qué",
    "Outcome": "Resultado",
    "Detail": "Detalle",
    "Nothing yet.": "Nada todavía.",
    "Stores whose id is, or whose name starts with: %(text)s": "Tiendas cuyo id es, o cuyo nombre empieza por: %(text)s",
    "Name": "Nombre",
    "No store matches.": "Ninguna tienda coincide.",
    "Id": "Id",
    "Owner": "Propietario",
    "owner": "propietario",
    "Tags": "Etiquetas",
    "Discount": "Descuento",
    "Amounts": "Montos",
    "from %(min)s to %(max)s": "de %(min)s a %(max)s",
    "Credentials": "Credenciales",
    "credentials": "credenciales",
    "set": "configuradas",
    "not set": "sin configurar",
    "key %(kid)s": "clave %(kid)s",
    "since %(at)s": "desde %(at)s",
    "Credentials saved, encrypted.": "Credenciales guardadas, cifradas.",
    "Fix this store (case 2)": "Corregir esta tienda (caso 2)",
    "Set credentials (case 3)": "Configurar credenciales (caso 3)",
    "Store changes": "Cambios de la tienda",
    "The journal: each change with the fields before and after, newest first": "El diario: cada cambio con los campos antes y después, los más recientes primero",
    "Change": "Cambio",
    "Reason": "Motivo",
    "Before": "Antes",
    "After": "Después",
    "Undo the latest change (%(id)s)": "Deshacer el último cambio (%(id)s)",
    "History": "Historial",
    "Credential attempts and store changes of this ally, newest first": "Intentos de credenciales y cambios de este aliado, los más recientes primero",
    "Fix a store": "Corregir una tienda",
    "Fix a store (case 2)": "Corregir una tienda (caso 2)",
    "The same statements as sql/02_update_store_owner_and_tags.sql and `allies store update`: one transaction, the row locked, only the named fields changed, journaled so it can be undone.": "Las mismas sentencias que sql/02_update_store_owner_and_tags.sql y `allies store update`: una transacción, la fila bloqueada, solo cambian los campos indicados, y queda en el diario para poder deshacerlo.",
    "Preview: nothing is written yet": "Vista previa: todavía no se escribe nada",
    "Field": "Campo",
    "Apply this change": "Aplicar este cambio",
    "The store is already like this: nothing would change.": "La tienda ya está así: no cambiaría nada.",
    "New owner (brand_owner)": "Nuevo propietario (brand_owner)",
    "Replace a tag": "Reemplazar una etiqueta",
    "Tag to replace": "Etiqueta a reemplazar",
    "(none)": "(ninguna)",
    "Replacement": "Reemplazo",
    "Reason, for the journal (a ticket, say)": "Motivo, para el diario (por ejemplo, un ticket)",
    "Preview the change": "Ver el cambio antes de aplicarlo",
    "Store changed": "Tienda cambiada",
    "Nothing changed": "No cambió nada",
    "No journaled change to undo.": "No hay ningún cambio en el diario para deshacer.",
    "The store was already like this.": "La tienda ya estaba así.",
    "Change undone": "Cambio deshecho",
    "Journaled as change %(id)s.": "Registrado en el diario como cambio %(id)s.",
    "Undo this change": "Deshacer este cambio",
    "Back to %(name)s": "Volver a %(name)s",
    "Set credentials": "Configurar credenciales",
    "Validated, encrypted (AES-256-GCM) and audited exactly like POST /allies/{allyId}/credentials. The password is never shown again, nor written to any log.": "Validadas, cifradas (AES-256-GCM) y auditadas exactamente como POST /allies/{allyId}/credentials. La contraseña no vuelve a mostrarse ni se escribe en ningún log.",
    "Not saved:": "No se guardó:",
    "Partner username": "Usuario del socio",
    "Partner password": "Contraseña del socio",
    "Save the credentials": "Guardar las credenciales",
    "Something is wrong (%(status)s)": "Algo salió mal (%(status)s)",
    "This form is out of date or did not come from this console: nothing was changed. Reload the page and try again.": "Este formulario está caducado o no viene de esta consola: no se cambió nada. Recargue la página e inténtelo de nuevo.",
    "Without API tokens the console answers only a browser on this machine, at localhost or 127.0.0.1.": "Sin tokens de la API, la consola solo responde a un navegador de esta máquina, en localhost o 127.0.0.1.",
    "The database is not answering. Try again in a few seconds.": "La base de datos no responde. Inténtelo de nuevo en unos segundos.",
    "Sign in first.": "Inicie sesión primero.",
    "There is no such page.": "Esa página no existe.",
    "The upload is too large.": "El archivo subido es demasiado grande.",
    "Too many changes from this address: wait %(s)s seconds.": "Demasiados cambios desde esta dirección: espere %(s)s segundos.",
    "The request could not be carried out; nothing was changed.": "No se pudo realizar la petición; no se cambió nada.",
    "Back to the overview": "Volver al resumen",
    "Log triage (case 4)": "Análisis de logs (caso 4)",
    "The same analysis as `allies logs triage`: failed requests, the allies whose credentials requests failed, whether they recovered, and what to do.": "El mismo análisis que `allies logs triage`: peticiones fallidas, los aliados cuyas peticiones de credenciales fallaron, si se recuperaron y qué hacer.",
    "An access log, plain or gzip (up to 64 MiB)": "Un log de acceso, plano o gzip (hasta 64 MiB)",
    "Analyse this log": "Analizar este log",
    "Or the log this server writes: %(path)s": "O el log que escribe este servidor: %(path)s",
    "Analyse the server's own log": "Analizar el log del propio servidor",
    "Log triage: %(name)s": "Análisis de logs: %(name)s",
    "lines": "líneas",
    "failed requests": "peticiones fallidas",
    "allies affected": "aliados afectados",
    "still affected": "aún afectado",
    "%(n)s lines are not access-log lines and were left out.": "%(n)s líneas no son líneas de log de acceso y se dejaron fuera.",
    "Failed requests over time, by status": "Peticiones fallidas en el tiempo, por estado",
    "One column per %(minutes)s minutes, UTC.": "Una columna cada %(minutes)s minutos, UTC.",
    "From (UTC)": "Desde (UTC)",
    "No failed requests.": "No hay peticiones fallidas.",
    "Affected allies": "Aliados afectados",
    "Allies whose requests to %(endpoint)s failed: still affected first": "Aliados cuyas peticiones a %(endpoint)s fallaron: primero los aún afectados",
    "Failures": "Fallos",
    "Statuses": "Estados",
    "Last failure": "Último fallo",
    "State": "Situación",
    "no such store": "no existe esa tienda",
    "recovered": "recuperado",
    "No ally was affected.": "Ningún aliado se vio afectado.",
    "What to do": "Qué hacer",
    "For each ally still affected (the first %(n)s). In the console: open the ally and use “Set credentials”.": "Para cada aliado aún afectado (los primeros %(n)s). En la consola: abra el aliado y use «Configurar credenciales».",
    "credentials.set": "credenciales",
    "store.change": "cambio de tienda",
    "success": "éxito",
    "rejected": "rechazado",
    "unauthorized": "no autorizado",
    "rate_limited": "limitado",
    "error": "error",
    "conflict": "conflicto",
    "credentials.restore": "restauración de credenciales",
    "Cancel": "Cancelar",
    "Changed meanwhile": "Cambió entretanto",
    "Credentials restored, as a new version.": "Credenciales restauradas, como una versión nueva.",
    "Credentials versions": "Versiones de las credenciales",
    "Every write of the credentials is a version, newest first; the latest ones are kept and can be restored, never shown": "Cada escritura de las credenciales es una versión, la más reciente primero; las últimas se conservan y se pueden restaurar, nunca mostrar",
    "Key": "Clave",
    "Look at the current state, then decide again.": "Mire el estado actual y decida de nuevo.",
    "Nothing was written.": "No se escribió nada.",
    "Replaced": "Reemplazada",
    "Restore": "Restaurar",
    "Restore credentials": "Restaurar credenciales",
    "Restore version %(n)s": "Restaurar la versión %(n)s",
    "Restore version %(n)s?": "¿Restaurar la versión %(n)s?",
    "Restored": "Restaurada",
    "Result": "Resultado",
    "The credentials changed since you loaded the page": "Las credenciales cambiaron desde que cargó la página",
    "Version": "Versión",
    "Version %(n)s was set by %(who)s at %(at)s.": "%(who)s configuró la versión %(n)s el %(at)s.",
    "current": "actual",
    "destroyed": "destruida",
    "its data written as a new version, under the active key; the audit names you": "sus datos escritos como una versión nueva, con la clave activa; la auditoría lo nombra a usted",
    "kept": "conservada",
    "no current version": "ninguna versión actual",
    "restored from %(n)s": "restaurada desde la %(n)s",
    "version %(n)s": "versión %(n)s",
    "version %(n)s, set by %(who)s at %(at)s": "versión %(n)s, configurada por %(who)s el %(at)s",
    "version %(n)s, set by %(who)s at %(at)s, key %(kid)s": "versión %(n)s, configurada por %(who)s el %(at)s, clave %(kid)s",
}

# English needs words only for the values shown translated.
ENGLISH = {
    "credentials.set": "credentials",
    "credentials.restore": "credentials restore",
    "store.change": "store change",
    "rate_limited": "rate limited",
}

CATALOGS = {"en": ENGLISH, "es": SPANISH}

"""Declared schemas of the step verbs and matchers, and the linter's reading of them.

Every verb (`engine.verbs.verb`) and every matcher (`engine.matchers.matcher`) is registered with a JSON Schema
(2020-12) of what it accepts, written beside its function. A verb's schema describes a step as the case loader
gives it: `_value` (what follows the verb), `with` (options), `within`, `as` and `check`; a matcher's schema
describes its argument. The linter validates every step against its verb's schema (the `check:` of an `expect`
step through the matchers' schemas) and names each problem in the case author's words, an unknown name with a
did-you-mean suggestion.

Two keywords of our own read the binding, so that a name the binding defines is checked against it:
- `binding_name: {of: <binding key or group>, plus: [...], suffix: "..."}`: the value is a name under a binding
  group (its children) or an item of a list parameter, or one of `plus`; `suffix` keeps only the names ending
  with it, without it (`{of: emsdp.tlv_lists, suffix: _mandatory}`: the commands with a mandatory-TLV list).
- `binding_keys: {of, plus, properties, values}`: an object whose keys are such names; `properties` gives the
  schema of some keys' values, `values` of the others'.
`title` names in messages what an object's keys are (option, matcher, header field) or what a value is (action,
message, cause); `description` says in words what a schema takes, shown when a value fits none of its forms.

To add an option to a verb: add it to the `options(...)` of the verb's schema (in engine/verbs.py or
engine/verbs/, right above the verb), and, if only some of the verb's values take it, a rule
(`only_with`, `needs`, `when`) in the schema's `rules`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from jsonschema import Draft202012Validator, ValidationError, validators

Schema = dict[str, Any]

# ---- building blocks of the verbs' and matchers' schemas ------------------------------------------------------

TRUE: Schema = {"const": True}
NOTHING: Schema = {"type": ["null", "object"], "maxProperties": 0, "description": "nothing (the verb takes no value)"}
DURATION: Schema = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s)?\s*$"},
    ],
    "description": "a duration such as 300ms, 2s or 2 (seconds)",
}
STRING: Schema = {"type": "string"}


def names(*values: Any, title: str = "value") -> Schema:
    """One of these values."""
    return {"enum": list(values), "title": title}


def binding_names(of: str, *, plus: Iterable[str] = (), suffix: str = "", title: str = "value") -> Schema:
    """A name the binding defines under `of` (see the module's docstring), or one of `plus`."""
    return {"type": "string", "binding_name": {"of": of, "plus": list(plus), "suffix": suffix}, "title": title}


def one_or_list(schema: Schema) -> Schema:
    """A value, or a list of values meaning any of them."""
    return {"anyOf": [schema, {"type": "array", "items": schema, "minItems": 1}]}


def mapping(properties: Mapping[str, Schema], *, title: str = "field", required: Iterable[str] = ()) -> Schema:
    """An object with exactly these keys (some of them required)."""
    schema: Schema = {"type": "object", "title": title, "properties": dict(properties), "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return schema


def options(**properties: Schema) -> Schema:
    """The `with:` of a step: these options and no other."""
    return mapping(properties, title="option")


def checks(properties: Mapping[str, Schema]) -> Schema:
    """The `check:` of a step: these named checks (a live mapping: registered matchers), each with its schema."""
    return {"type": "object", "title": "matcher", "properties": properties, "additionalProperties": False}


def not_here(why: str) -> Schema:
    """Refuses whatever is there, saying why."""
    return {"not": {}, "description": why}


def when(values: Iterable[Any], then: Schema, *, otherwise: Schema | None = None) -> Schema:
    """A rule: when the step's value is one of `values`, the step also satisfies `then` (else `otherwise`)."""
    rule: Schema = {"if": {"properties": {"_value": {"enum": list(values)}}}}
    if then:
        rule["then"] = then
    if otherwise is not None:
        rule["else"] = otherwise
    return rule


def only_with(values: Iterable[Any], *option_names: str) -> Schema:
    """A rule: these options are taken only when the step's value is one of `values`."""
    values = list(values)
    refused = not_here(f"taken only with {' or '.join(map(str, values))}")
    return when(values, {}, otherwise={"properties": {"with": {"properties": dict.fromkeys(option_names, refused)}}})


def not_with(values: Iterable[Any], *option_names: str) -> Schema:
    """A rule: these options are not taken when the step's value is one of `values`."""
    values = list(values)
    refused = not_here(f"not taken with {' or '.join(map(str, values))}")
    return when(values, {"properties": {"with": {"properties": dict.fromkeys(option_names, refused)}}})


def needs(values: Iterable[Any], *option_names: str) -> Schema:
    """A rule: when the step's value is one of `values`, these options must be given."""
    values = list(values)
    why = f"{' or '.join(map(str, values))} needs option {', '.join(option_names)}"
    return when(
        values,
        {
            "required": ["with"],
            "description": why,
            "properties": {"with": {"required": list(option_names), "description": why}},
        },
    )


def step(
    value: Schema,
    *,
    with_: Schema | None = None,
    within: bool = False,
    as_: bool = False,
    check: Schema | None = None,
    rules: Iterable[Schema] = (),
) -> Schema:
    """The schema of a verb's steps: its value, and which of with/within/as/check it takes."""
    properties: Schema = {"_value": value}
    if with_ is not None:
        properties["with"] = with_
    if within:
        properties["within"] = DURATION
    if as_:
        properties["as"] = {"type": "string", "description": "the name of a UE of the case"}
    if check is not None:
        properties["check"] = check
    schema: Schema = {
        "type": "object",
        "title": "step argument",
        "properties": properties,
        "additionalProperties": False,
    }
    rules = list(rules)
    if rules:
        schema["allOf"] = rules
    return schema


# ---- validation against a binding ---------------------------------------------------------------------------


def binding_name_list(binding: Mapping[str, Any], spec: Mapping[str, Any]) -> list[str]:
    """The names a `binding_name` / `binding_keys` spec allows under this binding."""
    of, suffix = spec["of"], spec.get("suffix", "")
    if of in binding:
        value = binding[of]
        found = [str(v) for v in value] if isinstance(value, list) else []
    else:
        children = getattr(binding, "children", None)
        found = list(children(of)) if children else []
    if suffix:
        found = [n[: -len(suffix)] for n in found if n.endswith(suffix)]
    return [*found, *(p for p in spec.get("plus", ()) if p not in found)]


class StepChecker:
    """Validates steps and matcher arguments against their schemas under one binding; problems in words."""

    def __init__(self, binding: Mapping[str, Any]):
        self.binding = binding

        def binding_name(validator: Any, spec: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
            if isinstance(instance, str) and instance not in binding_name_list(binding, spec):
                yield ValidationError(f"{instance!r} is not a name under {spec['of']}")

        def binding_keys(validator: Any, spec: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
            if not isinstance(instance, dict):
                return
            known = binding_name_list(binding, spec)
            unknown = [key for key in instance if key not in known]
            if unknown:
                yield ValidationError(f"{unknown} are not names under {spec['of']}")
            for key, value in instance.items():
                if key in known:
                    sub = spec.get("properties", {}).get(key, spec.get("values", True))
                    yield from validator.descend(value, sub, path=key)

        self._cls = validators.extend(
            Draft202012Validator, {"binding_name": binding_name, "binding_keys": binding_keys}
        )

    def problems(self, schema: Schema, instance: Any) -> list[str]:
        """Every problem of `instance` (a step's arguments) under `schema`, each in words, in a stable order."""
        errors = sorted(self._cls(schema).iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path])
        found: list[str] = []
        for error in _without_shadowed(errors):
            for message in self._messages(error):
                if message not in found:
                    found.append(message)
        return found

    # ---- from a jsonschema error to words --------------------------------------------------------------------

    def _messages(self, error: ValidationError) -> list[str]:
        path = list(error.absolute_path)
        where = _where(path)
        named = "" if len(path) == 1 and path[0] in ("with", "check") else where  # "unknown option" says where
        keyword, instance, schema = error.validator, error.instance, error.schema
        if keyword in ("additionalProperties", "binding_keys"):
            if keyword == "binding_keys":
                known = binding_name_list(self.binding, error.validator_value)
            else:
                known = list(schema.get("properties", {}))
            unknown = [key for key in instance if key not in known]
            if not path:  # a key of the step itself: with, check, within or as
                takes = ", ".join(k for k in known if k != "_value") or "no with, check, within or as"
                return [f"takes no {key!r} (it takes {takes})" for key in unknown]
            noun = schema.get("title", "field")
            return [f"{named}unknown {noun} {key!r}{_suggest(key, known)} known: {_list(known)}" for key in unknown]
        if keyword in ("enum", "binding_name"):
            known = (
                binding_name_list(self.binding, error.validator_value)
                if keyword == "binding_name"
                else list(error.validator_value)
            )
            noun = schema.get("title", "value")
            return [f"{where}unknown {noun} {_show(instance)}{_suggest(instance, known)} known: {_list(known)}"]
        if keyword == "const":
            return [f"{where}must be {_show(error.validator_value)}, got {_show(instance)}"]
        if keyword == "type":
            return [f"{where}must be {_types(error.validator_value)}, got {_show(instance)}"]
        if keyword in ("required", "dependentRequired"):
            if schema.get("description"):
                return [f"{named}{schema['description']}"]
            missing = [name for name in error.validator_value if name not in instance]
            return [f"{named}missing {schema.get('title', 'field')} {name!r}" for name in missing]
        if keyword == "not" or keyword is None:  # `not_here`, or a false schema
            why = schema.get("description", "not taken here") if isinstance(schema, dict) else "not taken here"
            return [f"{where}{why}"]
        if keyword in ("anyOf", "oneOf"):
            return self._alternatives(error, where)
        if isinstance(schema, dict) and schema.get("description"):
            return [f"{where}must be {schema['description']}, got {_show(instance)}"]
        return [f"{where}{error.message}"]

    def _alternatives(self, error: ValidationError, where: str) -> list[str]:
        """A value that fits none of several forms. If only one form has its type and the problems within it name
        something (an unknown name, a problem inside a mapping or list), those; else what the forms are."""
        alternatives = error.validator_value
        fitting = [i for i, alt in enumerate(alternatives) if _fits(alt, error.instance)]
        if len(fitting) == 1:
            inner = _without_shadowed([e for e in error.context or () if list(e.relative_schema_path)[:1] == fitting])
            depth = len(error.absolute_path)
            if inner and all(
                len(e.absolute_path) > depth or e.validator in ("enum", "binding_name", "additionalProperties")
                for e in inner
            ):
                return [message for e in inner for message in self._messages(e)]
        described = error.schema.get("description") or " or ".join(self._describe(alt) for alt in alternatives)
        known = [n for alt in alternatives for n in self._names(alt)]
        close = _suggest(error.instance, known) if known else ";"
        return [f"{where}must be {described}, got {_show(error.instance)}{close.rstrip(';')}"]

    def _names(self, schema: Any) -> list[str]:
        if not isinstance(schema, dict):
            return []
        if "const" in schema:
            return [schema["const"]]
        if "enum" in schema:
            return list(schema["enum"])
        if "binding_name" in schema:
            return binding_name_list(self.binding, schema["binding_name"])
        return []

    def _describe(self, schema: Any) -> str:
        if not isinstance(schema, dict):
            return "anything" if schema else "nothing"
        if schema.get("description"):
            return schema["description"]
        listed = self._names(schema)
        if listed:
            return " | ".join(_show(n) for n in listed)
        if schema.get("type") == "array" and "items" in schema:
            return f"a list of {self._describe(schema['items'])}"
        if "type" in schema:
            return _types(schema["type"])
        return "something else"


def _without_shadowed(errors: list[ValidationError]) -> list[ValidationError]:
    """Leaves out a missing key beside an unknown one in the same mapping: the unknown one (a typo, mostly) says
    it, with a suggestion."""
    unknown_at = {tuple(e.absolute_path) for e in errors if e.validator in ("additionalProperties", "binding_keys")}
    return [e for e in errors if not (e.validator == "required" and tuple(e.absolute_path) in unknown_at)]


def _where(path: list[Any]) -> str:
    """Where in the step a problem is, as a prefix: 'option key.expect: ', 'matcher header.session_id: '."""
    if not path or path == ["_value"]:
        return ""
    head, *rest = path
    name = ".".join(str(p) for p in rest)
    if head in ("with", "check") and rest:
        return f"{'option' if head == 'with' else 'matcher'} {name}: "
    return f"{head}{'.' + name if name else ''}: "


def _suggest(value: Any, known: Iterable[Any]) -> str:
    """'; did you mean 'x'?' for a close name, else ';': the list of the known names follows either."""
    if not isinstance(value, str):
        return ";"
    close = difflib.get_close_matches(value, [str(k) for k in known], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ";"


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nothing"
    return repr(value)


def _list(values: Iterable[Any]) -> str:
    return ", ".join(str(v) for v in values)


_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "nothing",
}


def _types(types: Any) -> str:
    types = [types] if isinstance(types, str) else list(types)
    return " or ".join(_TYPE_WORDS.get(t, t) for t in types)


def _fits(schema: Any, instance: Any) -> bool:
    """Whether an alternative is of the instance's JSON type (so its own problems are the ones to show)."""
    if not isinstance(schema, dict):
        return bool(schema)
    if "const" in schema or "enum" in schema:
        listed = [schema["const"]] if "const" in schema else schema["enum"]
        return any(_json_type(v) == _json_type(instance) for v in listed)
    types = schema.get("type")
    if types is None:
        return isinstance(instance, dict) or ("properties" not in schema and "binding_keys" not in schema)
    types = [types] if isinstance(types, str) else types
    kind = _json_type(instance)
    return kind in types or (kind == "integer" and "number" in types)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "null"

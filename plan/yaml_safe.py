"""YAML for config files that people write: safe tags only, and bounded in size once expanded.

``yaml.safe_load`` already refuses ``!!python/...`` tags, but it follows aliases: ten
nested anchors of ten aliases each ("billion laughs") make a graph of a few hundred bytes that
anything walking it (validation, an error message's repr) sees as 10^10 values. So the node
graph is composed first and checked (expanded node count, nesting depth, no alias cycles)
before any Python object is built. docs/inputs.md lists the caps.
"""

from __future__ import annotations

import yaml

from plan.errors import InputError, Problem

MAX_YAML_NODES = 20_000  # scalars + lists + mappings, aliases counted as what they expand to
MAX_YAML_DEPTH = 32


def _mark(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""


def _check_graph(root: yaml.Node, where: str) -> None:
    """Expanded size and depth of the node graph, in time linear in its stored size."""
    sizes: dict[int, int] = {}
    depths: dict[int, int] = {}
    on_path: set[int] = set()

    def visit(node: yaml.Node) -> tuple[int, int]:
        key = id(node)
        if key in sizes:
            return sizes[key], depths[key]
        if key in on_path:
            raise InputError([Problem(where, "an alias refers to a node that contains it (a cycle); "
                                             "YAML aliases must not nest into themselves", code="bad_yaml")])
        if isinstance(node, yaml.ScalarNode):
            size, depth = 1, 0
        else:
            on_path.add(key)
            children = [child for pair in node.value for child in pair] if isinstance(node, yaml.MappingNode) \
                else list(node.value)
            size, depth = 1, 0
            for child in children:
                child_size, child_depth = visit(child)
                size += child_size
                depth = max(depth, child_depth)
                if size > MAX_YAML_NODES:
                    break
            depth += 1
            on_path.discard(key)
        if size > MAX_YAML_NODES:
            raise InputError([Problem(where, f"expands to more than {MAX_YAML_NODES} values (YAML aliases "
                                             "repeat what they point to); write the values out or simplify",
                                      code="yaml_too_big")])
        if depth > MAX_YAML_DEPTH:
            raise InputError([Problem(where, f"nests more than {MAX_YAML_DEPTH} levels deep", code="yaml_too_big")])
        sizes[key], depths[key] = size, depth
        return size, depth

    visit(root)


def load_yaml(text: str, where: str) -> object:
    """Parse one YAML document with the safe loader, refusing graphs over the caps.

    Raises ``InputError`` naming ``where`` (and the line for syntax errors)."""
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:  # raised while the loader checks the text
        raise InputError([Problem(where, f"not valid YAML: {exc.reason} (U+{exc.character:04X} at "
                                         f"character {exc.position})", code="bad_yaml")]) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_graph(node, where)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        raise InputError([Problem(where, f"not valid YAML{_mark(exc)}: {exc.problem or exc.context}",
                                  code="bad_yaml")]) from None
    except yaml.YAMLError as exc:
        raise InputError([Problem(where, f"not valid YAML: {exc}", code="bad_yaml")]) from None
    except RecursionError:
        raise InputError([Problem(where, f"nests more than {MAX_YAML_DEPTH} levels deep",
                                  code="yaml_too_big")]) from None
    except (ValueError, OverflowError) as exc:  # a value the constructor cannot build, e.g. date 0000-00-00
        raise InputError([Problem(where, f"not valid YAML: {exc}", code="bad_yaml")]) from None
    finally:
        loader.dispose()

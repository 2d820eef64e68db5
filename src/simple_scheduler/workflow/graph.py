"""Dependency-graph algorithms, iterative and O(V + E) so 100,000-task jobs are cheap.

Graphs are given as `parents[i]`: the indexes task `i` depends on.
"""

from __future__ import annotations

from collections.abc import Sequence


def children(parents: Sequence[Sequence[int]]) -> list[list[int]]:
    """Invert `parents` into, for each task, the tasks that depend on it."""
    kids: list[list[int]] = [[] for _ in parents]
    for child, ps in enumerate(parents):
        for p in ps:
            kids[p].append(child)
    return kids


def _kahn(parents: Sequence[Sequence[int]]) -> tuple[list[int], list[int]]:
    """Kahn's algorithm: (order, in-degree left); unsorted tasks lie on or behind cycles."""
    kids = children(parents)
    indegree = [len(ps) for ps in parents]
    order = [i for i, d in enumerate(indegree) if d == 0]
    head = 0
    while head < len(order):
        node = order[head]
        head += 1
        for kid in kids[node]:
            indegree[kid] -= 1
            if indegree[kid] == 0:
                order.append(kid)
    return order, indegree


def topological_order(parents: Sequence[Sequence[int]]) -> list[int]:
    """Indexes such that each task comes after its parents; ValueError on a cycle.

    Ties keep document order among tasks that become ready together, so a chain
    written in order stays in order.
    """
    order, _ = _kahn(parents)
    if len(order) != len(parents):
        raise ValueError("dependency graph has a cycle")
    return order


def find_cycles(parents: Sequence[Sequence[int]], limit: int = 100) -> list[list[int]]:
    """Up to `limit` distinct cycles, each as [a, b, ..., a] where each depends on the last."""
    return order_or_cycles(parents, limit)[1]


def order_or_cycles(
    parents: Sequence[Sequence[int]], limit: int = 100
) -> tuple[list[int], list[list[int]]]:
    """(topological order, []) for an acyclic graph, else (partial order, cycles).

    After Kahn's pass every leftover task still has a leftover parent, so walking from
    one to a leftover parent must revisit a task: that closes a cycle. Each task is
    walked at most once overall, hence O(V + E).
    """
    order, indegree = _kahn(parents)
    if len(order) == len(parents):
        return order, []
    left = [d > 0 for d in indegree]
    state = [0] * len(parents)  # 0 unseen, 1 on the current walk, 2 done
    cycles: list[list[int]] = []
    for start in range(len(parents)):
        if not left[start] or state[start]:
            continue
        walk: list[int] = []
        node = start
        while state[node] == 0:
            state[node] = 1
            walk.append(node)
            node = next(p for p in parents[node] if left[p])
        if state[node] == 1:  # closed a new cycle on this walk
            loop = walk[walk.index(node) :]
            loop.reverse()  # walked child -> parent; report parent -> child
            first = loop.index(min(loop))  # start at the task written first
            loop = loop[first:] + loop[:first]
            cycles.append([*loop, loop[0]])
        for n in walk:
            state[n] = 2
        if len(cycles) >= limit:
            break
    return order, cycles

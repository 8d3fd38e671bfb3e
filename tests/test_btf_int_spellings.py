"""ktriage.btf.drgn_types.int_spellings: the names a C integer type has in a kernel's BTF, whatever spelling drgn
asks for. The GCC names are those Debian 12's 6.1 kernel BTF holds (`bpftool btf dump file vmlinux | grep INT`:
'long unsigned int', 'short unsigned int', 'long long unsigned int', 'signed char', '__int128 unsigned', ...); the
clang names are those clang writes in DWARF (`unsigned long`, `short`)."""

from __future__ import annotations

import pytest

from ktriage.btf.drgn_types import int_spellings

# drgn asks "unsigned long" as these, in this order, until a finder answers (observed with a tracing finder)
DRGN_ASKS_UNSIGNED_LONG = [
    "unsigned long",
    "long unsigned",
    "unsigned long int",
    "unsigned int long",
    "long unsigned int",
]


@pytest.mark.parametrize("asked", DRGN_ASKS_UNSIGNED_LONG)
def test_every_spelling_of_unsigned_long_finds_gccs_name_first(asked):
    assert int_spellings(asked) == ("long unsigned int", "unsigned long")


@pytest.mark.parametrize(
    ("asked", "names"),
    [
        ("int", ("int",)),
        ("signed", ("int",)),  # C: `signed` alone is `signed int`
        ("unsigned", ("unsigned int",)),
        ("unsigned int", ("unsigned int",)),
        ("long", ("long int", "long")),
        ("signed long int", ("long int", "long")),
        ("long long", ("long long int", "long long")),
        ("unsigned long long", ("long long unsigned int", "unsigned long long")),
        ("short", ("short int", "short")),
        ("unsigned short", ("short unsigned int", "unsigned short")),
        ("char", ("char",)),  # plain char is its own type, neither signed nor unsigned char
        ("signed char", ("signed char",)),
        ("unsigned char", ("unsigned char",)),
        ("_Bool", ("_Bool",)),
        ("__int128", ("__int128",)),
        ("unsigned __int128", ("__int128 unsigned", "unsigned __int128")),
        ("u64", ()),  # a typedef: BTF has it under its own name
        ("struct task_struct", ()),
    ],
)
def test_spellings(asked, names):
    assert int_spellings(asked) == names

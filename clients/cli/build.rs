//! Names the commit and the build day in `--version` (see `cairn-buildinfo`).

fn main() {
    cairn_buildinfo::emit();
}

//! The world a component was built for, read from its binary before it is compiled.
//!
//! Compiling a Python or JavaScript component takes 20–30 s; a component built for another
//! world (one that imports `wasi:keyvalue`, say, or exports neither `run` nor a `wasi:http`
//! handler) would only be refused by the linker after that. Its top-level imports and exports are in the binary's first sections, so
//! it is refused here in milliseconds. The linker still checks every function's type after the
//! compile: this check only refuses what the linker would refuse for certain.

use std::fmt::Write as _;

use wasmparser::{ComponentExternalKind, ComponentTypeRef, Parser, Payload};

use super::LinkError;
use crate::capabilities::WORLD;

/// The WASI 0.2 packages linked for every plugin (`wasmtime_wasi::p2::add_to_linker_async`).
const WASI_PACKAGES: [&str; 6] = ["cli", "clocks", "filesystem", "io", "random", "sockets"];

/// The interfaces of `wasi:http` 0.2 linked for every plugin (the client side; the
/// `incoming-handler` is what an HTTP plugin exports).
const WASI_HTTP_INTERFACES: [&str; 2] = ["types", "outgoing-handler"];

/// The export that makes a component an HTTP plugin (the `wasi:http/proxy` world).
pub const INCOMING_HANDLER: &str = "wasi:http/incoming-handler";

/// Refuses a component whose top-level imports name something this host does not link (it
/// links interfaces only), or that exports neither a `run` function nor a `wasi:http` 0.2
/// incoming handler.
pub fn check(bytes: &[u8]) -> Result<(), LinkError> {
    let surface = Surface::read(bytes);
    if let Some(import) = surface.imports.iter().find(|name| !provided(name)) {
        let mut message = format!("{import}, which this host does not link for task plugins");
        if import.starts_with("ignareo:task/") {
            let _ = write!(
                message,
                ": it is another version of the ignareo:task interfaces; rebuild it with the SDK for {WORLD}"
            );
        } else {
            let _ = write!(
                message,
                " (they get the interfaces of {WORLD}, WASI 0.2's {} and wasi:http's {})",
                WASI_PACKAGES.join(", "),
                WASI_HTTP_INTERFACES.join(", ")
            );
        }
        return Err(LinkError::Imports(message));
    }
    if surface.read_to_end && !surface.exports_run && !surface.exports_handler {
        return Err(LinkError::Exports(format!(
            "it exports neither a `run` function (a task plugin) nor {INCOMING_HANDLER}@0.2 (an HTTP plugin, the wasi:http/proxy world)"
        )));
    }
    Ok(())
}

/// Whether the linker defines the interface `name` (`namespace:package/interface@version`):
/// this host's `ignareo:task` interfaces, or WASI 0.2's, at any 0.2 version (the linker
/// matches those by semver).
fn provided(name: &str) -> bool {
    let Some((path, version)) = name.split_once('@') else { return false };
    let Some((package, interface)) = path.split_once('/') else { return false };
    let ours = WORLD.rsplit_once('@').map_or("", |(_, version)| version);
    match package.split_once(':') {
        Some(("ignareo", "task")) => same_minor(version, ours),
        Some(("wasi", "http")) => WASI_HTTP_INTERFACES.contains(&interface) && same_minor(version, "0.2.0"),
        Some(("wasi", wasi_package)) => WASI_PACKAGES.contains(&wasi_package) && same_minor(version, "0.2.0"),
        _ => false,
    }
}

/// Whether two `0.x.y` versions share their `0.x`, as semver counts compatible.
fn same_minor(version: &str, wanted: &str) -> bool {
    let minor = |v: &str| {
        let mut parts = v.split('.');
        (parts.next().map(str::to_owned), parts.next().map(str::to_owned))
    };
    minor(version) == minor(wanted)
}

/// The component's own imports and whether it exports a `run` function or an HTTP handler;
/// nested components'
/// and modules' sections are skipped. A malformed binary is read up to its first fault: the
/// compiler then says what is wrong with it.
struct Surface {
    imports: Vec<String>,
    exports_run: bool,
    exports_handler: bool,
    read_to_end: bool,
}

impl Surface {
    fn read(bytes: &[u8]) -> Self {
        let mut surface = Self { imports: Vec::new(), exports_run: false, exports_handler: false, read_to_end: false };
        surface.read_to_end = surface.scan(bytes).is_ok();
        surface
    }

    fn scan(&mut self, bytes: &[u8]) -> wasmparser::Result<()> {
        let mut depth = 0_u32;
        for payload in Parser::new(0).parse_all(bytes) {
            match payload? {
                Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
                Payload::End(_) => depth = depth.saturating_sub(1),
                Payload::ComponentImportSection(imports) if depth == 0 => {
                    for import in imports {
                        let import = import?;
                        // A type import names a type of an imported interface: nothing to link.
                        if !matches!(import.ty, ComponentTypeRef::Type(_)) {
                            self.imports.push(import.name.name.to_owned());
                        }
                    }
                }
                Payload::ComponentExportSection(exports) if depth == 0 => {
                    for export in exports {
                        let export = export?;
                        let name = export.name.name;
                        self.exports_run |= name == "run" && export.kind == ComponentExternalKind::Func;
                        self.exports_handler |= export.kind == ComponentExternalKind::Instance
                            && name
                                .split_once('@')
                                .is_some_and(|(path, v)| path == INCOMING_HANDLER && same_minor(v, "0.2.0"));
                    }
                }
                // Code is not parsed further here; the compiler validates it.
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn component(text: &str) -> Vec<u8> {
        wat::parse_str(text).expect("valid component text")
    }

    #[test]
    fn the_hosts_interfaces_are_provided_at_any_compatible_version() {
        for name in [
            "ignareo:task/http@0.2.0",
            "wasi:cli/environment@0.2.9",
            "wasi:io/streams@0.2.12",
            "wasi:http/types@0.2.10",
            "wasi:http/outgoing-handler@0.2.6",
        ] {
            assert!(provided(name), "{name}");
        }
        for name in [
            "ignareo:task/http@0.1.0",
            "wasi:http/incoming-handler@0.2.10",
            "wasi:http/types@0.3.0",
            "wasi:io/streams@0.3.0",
            "wasi:keyvalue/store@0.2.0",
            "run",
            "acme:x/y@1.0.0",
        ] {
            assert!(!provided(name), "{name}");
        }
    }

    #[test]
    fn a_component_for_another_world_is_refused_by_what_it_imports_or_lacks() {
        let keyvalue = component(r#"(component (import "wasi:keyvalue/store@0.2.0" (instance)))"#);
        let Err(LinkError::Imports(message)) = check(&keyvalue) else { panic!("refused for its import") };
        assert!(message.starts_with("wasi:keyvalue/store@0.2.0, which this host does not link"), "{message}");
        let older = component(r#"(component (import "ignareo:task/http@0.1.0" (instance)))"#);
        let Err(LinkError::Imports(message)) = check(&older) else { panic!("refused for its import") };
        assert!(message.contains("rebuild it with the SDK for ignareo:task/task@0.2.0"), "{message}");
        let no_run = component(r#"(component (import "wasi:cli/stdout@0.2.0" (instance)))"#);
        assert!(matches!(check(&no_run), Err(LinkError::Exports(_))));
        let mut truncated = no_run.clone();
        truncated.truncate(no_run.len() - 3);
        assert!(check(&truncated).is_ok(), "a malformed binary is left to the compiler to explain");
    }

    #[test]
    fn nested_components_imports_are_their_own() {
        let nested = component(
            r#"(component
                 (component (import "wasi:keyvalue/store@0.2.0" (instance)))
                 (core module $m (func (export "run")))
                 (core instance $i (instantiate $m))
                 (func (export "run") (canon lift (core func $i "run"))))"#,
        );
        assert!(check(&nested).is_ok());
    }

    #[test]
    fn an_http_handler_makes_a_component_a_plugin_too() {
        let handler = component(
            r#"(component
                 (import "wasi:http/types@0.2.10" (instance))
                 (instance $h)
                 (export "wasi:http/incoming-handler@0.2.10" (instance $h)))"#,
        );
        assert!(check(&handler).is_ok());
        let preview3 =
            component(r#"(component (instance $h) (export "wasi:http/incoming-handler@0.3.0" (instance $h)))"#);
        assert!(matches!(check(&preview3), Err(LinkError::Exports(_))));
    }
}

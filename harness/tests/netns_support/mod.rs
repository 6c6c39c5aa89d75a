//! Shared by the tests whose hosts are network namespaces: whether this
//! machine can make them (or a SKIP line).
#![allow(dead_code)] // Each test binary uses its own subset.

/// True when namespaces with sshds can be made here; otherwise prints a
/// `SKIP` line for `test` (a panic instead when FAULTLINE_REQUIRE_NETNS=1,
/// as `.ci/run` sets as root).
pub fn netns_or_skip(test: &str) -> bool {
    match faultline::cluster::netns_available() {
        Ok(()) => true,
        Err(error) if std::env::var("FAULTLINE_REQUIRE_NETNS").as_deref() == Ok("1") => {
            panic!("FAULTLINE_REQUIRE_NETNS=1 but {error}")
        }
        Err(error) => {
            eprintln!("SKIP: {test}: {error}");
            false
        }
    }
}

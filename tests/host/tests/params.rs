//! Tests of module parameter validation.

use mace_core::params::Params;

#[test]
fn defaults_are_valid() {
    let p = Params::validate(b"", 4096, 4096, 1000, true, 32, 60_000).unwrap();
    assert!(p.outer_devs.is_empty());
    assert_eq!(
        (
            p.table_size,
            p.ring_size,
            p.max_age_ms,
            p.self_cost,
            p.max_netns_per_user,
            p.peer_window_ms
        ),
        (4096, 4096, 1000, true, 32, 60_000)
    );
}

#[test]
fn bounds_are_inclusive() {
    assert!(Params::validate(b"eth0,2", 64, 16, 1, false, 0, 0).is_ok());
    assert!(Params::validate(b"eth0,2", 1 << 20, 1 << 16, 60_000, false, 4096, 3_600_000).is_ok());
}

#[test]
fn each_bad_parameter_is_named_with_what_is_accepted() {
    let cases: [(&[u8], u32, u32, u32, u32, u32, &str); 11] = [
        (b"eth0,,x", 4096, 4096, 1000, 32, 60_000, "invalid outer_dev: empty device entry"),
        (b"a/b", 4096, 4096, 1000, 32, 60_000, "invalid outer_dev: invalid interface name"),
        (b"0", 4096, 4096, 1000, 32, 60_000, "invalid outer_dev: ifindex must be"),
        (b"", 100, 4096, 1000, 32, 60_000, "invalid table_size: out of range or not a power of two; accepted: a power of two from 64 to 1048576"),
        (b"", 32, 4096, 1000, 32, 60_000, "invalid table_size"),
        (b"", 4096, 8, 1000, 32, 60_000, "invalid ring_size: out of range or not a power of two; accepted: a power of two from 16 to 65536"),
        (b"", 4096, 4096, 0, 32, 60_000, "invalid max_age_ms: out of range or not a power of two; accepted: 1 to 60000"),
        (b"", 4096, 4096, 60_001, 32, 60_000, "invalid max_age_ms"),
        (b"", 4096, 4096, 1000, 4097, 60_000, "invalid max_netns_per_user: out of range or not a power of two; accepted: 0 to 4096"),
        (b"", 4096, 4096, 1000, 32, 3_600_001, "invalid peer_window_ms: out of range or not a power of two; accepted: 0 to 3600000"),
        (b"", 4096, 4096, 1000, 32, u32::MAX, "invalid peer_window_ms"),
    ];
    for (dev, t, r, a, n, w, want) in cases {
        let e = Params::validate(dev, t, r, a, false, n, w)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(want), "{e:?} does not start with {want:?}");
        assert!(e.contains("accepted: "), "{e:?}");
    }
}

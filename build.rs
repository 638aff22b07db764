//! Builds ferrovs's DPDK binding: finds DPDK with pkg-config, compiles the C wrappers for
//! DPDK's static inline functions and macros (csrc/), and runs bindgen over an allowlist.

use std::env;
use std::path::PathBuf;

const MISSING: &str = "DPDK not found: install libdpdk-dev pkg-config \
                       (Debian: apt-get install libdpdk-dev pkg-config libclang-dev)";

fn main() {
    println!("cargo:rerun-if-changed=csrc/ferrovs_dpdk.h");
    println!("cargo:rerun-if-changed=csrc/ferrovs_dpdk.c");
    println!("cargo:rerun-if-changed=build.rs");

    let dpdk = match pkg_config::Config::new().atleast_version("22.11").cargo_metadata(true).probe("libdpdk") {
        Ok(lib) => lib,
        Err(e) => {
            eprintln!("{MISSING}\n(pkg-config said: {e})");
            panic!("{MISSING}");
        }
    };
    // These live only in driver libraries, which pkg-config does not list (the drivers are
    // plugins loaded at run time): rte_eth_from_rings (net_ring) and rte_vdev_init (bus_vdev).
    println!("cargo:rustc-link-lib=rte_net_ring");
    println!("cargo:rustc-link-lib=rte_bus_vdev");
    // Listed by pkg-config too, but named here because ferrovs depends on it directly
    // (the capture tools' request handler, src/pdump.rs).
    println!("cargo:rustc-link-lib=rte_pdump");

    // The cflags pkg-config gives (include paths, `-include rte_config.h`, `-march=...`).
    let cflags: Vec<String> = pkg_config::get_variable("libdpdk", "cflags")
        .ok()
        .filter(|s| !s.is_empty())
        .map(|s| s.split_whitespace().map(String::from).collect())
        .unwrap_or_else(|| {
            let out = std::process::Command::new("pkg-config").args(["--cflags", "libdpdk"]).output().expect(MISSING);
            String::from_utf8_lossy(&out.stdout).split_whitespace().map(String::from).collect()
        });
    let mut clang_args: Vec<String> = cflags.clone();
    for p in &dpdk.include_paths {
        clang_args.push(format!("-I{}", p.display()));
    }
    clang_args.push("-Icsrc".into());

    let mut build = cc::Build::new();
    build.file("csrc/ferrovs_dpdk.c").include("csrc").opt_level(3).warnings(false);
    for p in &dpdk.include_paths {
        build.include(p);
    }
    // Pass the non-include flags through (`-include rte_config.h`, `-march=...`).
    let mut it = cflags.iter();
    while let Some(f) = it.next() {
        if f == "-include" {
            if let Some(h) = it.next() {
                build.flag("-include").flag(h);
            }
        } else if !f.starts_with("-I") {
            build.flag(f);
        } else {
            build.include(&f[2..]);
        }
    }
    build.compile("ferrovs_dpdk_wrappers");

    let bindings = bindgen::Builder::default()
        .header("csrc/ferrovs_dpdk.h")
        .clang_args(&clang_args)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .allowlist_function("fvs_.*")
        .allowlist_function("rte_eal_init")
        .allowlist_function("rte_eal_cleanup")
        .allowlist_function("rte_eal_get_runtime_dir")
        .allowlist_function("rte_pdump_init")
        .allowlist_function("rte_pdump_uninit")
        .allowlist_function("if_indextoname")
        .allowlist_function("rte_strerror")
        .allowlist_function("rte_socket_id")
        .allowlist_function("rte_get_tsc_hz")
        .allowlist_function("rte_thread_register")
        .allowlist_function("rte_thread_unregister")
        .allowlist_function("rte_pktmbuf_pool_create")
        .allowlist_function("rte_pktmbuf_free_bulk")
        .allowlist_function("rte_pktmbuf_copy")
        .allowlist_function("rte_mempool_free")
        .allowlist_function("rte_mempool_avail_count")
        .allowlist_function("rte_mempool_in_use_count")
        .allowlist_function("rte_eth_dev_configure")
        .allowlist_function("rte_eth_dev_info_get")
        .allowlist_function("rte_eth_rx_queue_setup")
        .allowlist_function("rte_eth_tx_queue_setup")
        .allowlist_function("rte_eth_dev_start")
        .allowlist_function("rte_eth_dev_stop")
        .allowlist_function("rte_eth_dev_close")
        .allowlist_function("rte_eth_dev_set_mtu")
        .allowlist_function("rte_eth_dev_set_link_down")
        .allowlist_function("rte_eth_dev_set_link_up")
        .allowlist_function("rte_eth_dev_callback_register")
        .allowlist_function("rte_eth_dev_callback_unregister")
        .allowlist_function("rte_eth_dev_socket_id")
        .allowlist_function("rte_eth_dev_get_port_by_name")
        .allowlist_function("rte_eth_dev_get_name_by_port")
        .allowlist_function("rte_eth_dev_is_valid_port")
        .allowlist_function("rte_eth_dev_count_avail")
        .allowlist_function("rte_eth_link_get_nowait")
        .allowlist_function("rte_eth_stats_get")
        .allowlist_function("rte_eth_stats_reset")
        .allowlist_function("rte_eth_macaddr_get")
        .allowlist_function("rte_eth_promiscuous_enable")
        .allowlist_function("rte_eth_promiscuous_disable")
        .allowlist_function("rte_eth_promiscuous_get")
        .allowlist_function("rte_eth_from_rings")
        .allowlist_function("rte_ring_free")
        .allowlist_function("rte_vdev_init")
        .allowlist_function("rte_vdev_uninit")
        .allowlist_function("rte_dev_probe")
        .allowlist_function("rte_telemetry_register_cmd")
        .allowlist_function("rte_tel_data_.*")
        .allowlist_type("rte_tel_value_type")
        .allowlist_var("RTE_TEL_MAX_.*")
        .allowlist_type("rte_mbuf")
        .allowlist_type("rte_mempool")
        .allowlist_type("rte_ring")
        .allowlist_type("rte_eth_conf")
        .allowlist_type("rte_eth_dev_info")
        .allowlist_type("rte_eth_link")
        .allowlist_type("rte_eth_stats")
        .allowlist_type("rte_ether_addr")
        .allowlist_var("RTE_MBUF_DEFAULT_BUF_SIZE")
        .allowlist_var("RTE_PKTMBUF_HEADROOM")
        .allowlist_var("RTE_MAX_ETHPORTS")
        .allowlist_var("RTE_ETH_LINK_.*")
        .allowlist_var("SOCKET_ID_ANY")
        .blocklist_type("max_align_t")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .generate()
        .expect("bindgen failed on csrc/ferrovs_dpdk.h");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("bindings.rs");
    bindings.write_to_file(out).expect("writing bindings.rs");
}

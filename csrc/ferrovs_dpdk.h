/*
 * ferrovs DPDK binding: the headers bindgen reads, plus C wrappers for what DPDK only
 * offers as static inline functions or macros. Every wrapper here works on a whole
 * burst (or is used outside the per-packet path), so the call overhead is paid once
 * per burst, not once per packet.
 */
#ifndef FERROVS_DPDK_H
#define FERROVS_DPDK_H

#include <stdint.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_cycles.h>
#include <rte_memory.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ethdev.h>
#include <rte_telemetry.h>
#include <rte_ring.h>
#include <rte_dev.h>
#include <rte_bus_vdev.h>
#include <rte_eth_ring.h>
#include <rte_pdump.h>
#include <net/if.h>

uint16_t fvs_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **pkts, uint16_t n);
uint16_t fvs_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **pkts, uint16_t n);
int fvs_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int n);
void fvs_pktmbuf_free(struct rte_mbuf *m);
char *fvs_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *fvs_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
char *fvs_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
int fvs_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
void fvs_pktmbuf_reset(struct rte_mbuf *m);
unsigned int fvs_lcore_id(void);
uint64_t fvs_rdtsc(void);
int fvs_errno(void);
struct rte_ring *fvs_ring_create(const char *name, unsigned int count, int socket_id);
void fvs_prefetch0(const void *p);

#endif

/*
 * Out-of-line wrappers for DPDK static inline functions and macros (see ferrovs_dpdk.h).
 * They only forward; all policy lives in the Rust side.
 */
#include "ferrovs_dpdk.h"
#include <rte_prefetch.h>

uint16_t fvs_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_rx_burst(port_id, queue_id, pkts, n);
}

uint16_t fvs_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_tx_burst(port_id, queue_id, pkts, n);
}

int fvs_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int n)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, n);
}

void fvs_pktmbuf_free(struct rte_mbuf *m)
{
	rte_pktmbuf_free(m);
}

char *fvs_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_prepend(m, len);
}

char *fvs_pktmbuf_adj(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_adj(m, len);
}

char *fvs_pktmbuf_append(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_append(m, len);
}

int fvs_pktmbuf_trim(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_trim(m, len);
}

void fvs_pktmbuf_reset(struct rte_mbuf *m)
{
	rte_pktmbuf_reset(m);
}

unsigned int fvs_lcore_id(void)
{
	return rte_lcore_id();
}

uint64_t fvs_rdtsc(void)
{
	return rte_rdtsc();
}

int fvs_errno(void)
{
	return rte_errno;
}

struct rte_ring *fvs_ring_create(const char *name, unsigned int count, int socket_id)
{
	/* Single producer / single consumer: each ring is one direction of a ring port pair. */
	return rte_ring_create(name, count, socket_id, RING_F_SP_ENQ | RING_F_SC_DEQ);
}

void fvs_prefetch0(const void *p)
{
	rte_prefetch0(p);
}

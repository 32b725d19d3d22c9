"""pcapgen: deterministic, standard-library-only builders for test captures.

Modules:
  writer  - classic pcap (usec / nsec magic) and pcapng (SHB, IDB, EPB) writers, Trace
  link    - Ethernet, 802.1Q, QinQ, Linux SLL / SLL2, raw IP, BSD null/loopback
  net     - IPv4 (checksum, fragmentation), IPv6 (+ext headers), UDP, TCP, TcpConn
  dns     - DNS message builder (compression pointers, EDNS OPT)
  smtp    - SMTP session builder on a TcpConn
  captures- one function per committed capture (pcaps/)
"""

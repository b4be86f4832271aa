// Package quicsteer runs a quic-go server on a socket that is a member of a
// [steer.Group], so that the copies of a QUIC server sharing one UDP port
// can join, leave and restart without breaking each other's connections.
//
// The kernel spreads the datagrams of a reuseport group over its sockets by
// a hash of their addresses, and that hash moves flows between sockets
// whenever a socket joins or leaves: a QUIC connection whose packets start
// reaching another socket is lost. The steer package attaches a classic BPF
// program to the group that sends each packet by the connection ID in its
// QUIC header instead. For that the server must choose connection IDs that
// name its socket, and its socket must answer the group's probes, through
// which every process learns which socket sits in which slot of the group.
// [NewTransport] does both for a [quic.Transport]:
//
//	conn, _ := reuseport.ListenPacket("udp", ":443")
//	g, _ := steer.NewGroup(steer.Config{})
//	m, _ := g.Join(conn.(*net.UDPConn))
//	tr := quicsteer.NewTransport(conn.(*net.UDPConn), m)
//	ln, _ := tr.ListenEarly(tlsConf, quicConf)
//	// serve ln, e.g. with (*http3.Server).ServeListener
//
// To stop one copy without breaking a connection, call [steer.Member.Drain]
// first (no new connection reaches the socket; its own keep arriving),
// shut the server down gracefully (HTTP/3 sends GOAWAY and finishes the
// requests in flight), then [steer.Member.Leave], and close the transport
// and the socket right after. The probes are answered on the transport
// itself, through [quic.Transport.ReadNonQUICPacket] and
// [quic.Transport.WriteTo], so the socket keeps quic-go's batched reads and
// segmentation offload.
package quicsteer

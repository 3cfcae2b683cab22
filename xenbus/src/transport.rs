//! The byte transport a [`Client`](crate::Client) runs over.

/// A bidirectional byte stream to xenstored.
///
/// Both directions are plain streams of whole xenstore messages; the transport
/// does not need to know message boundaries (the client frames them).
///
/// Contract:
/// - [`send`](Transport::send) writes a prefix of `data` and returns its length;
///   0 means "no room now" (a full ring), after which the client calls
///   [`wait`](Transport::wait) and retries.
/// - [`recv`](Transport::recv) reads at most `buf.len()` bytes; 0 means "nothing
///   available now" (an empty ring). A transport that blocks (a socket) never
///   returns 0; end of stream is an error.
/// - [`wait`](Transport::wait) blocks until progress may be possible (an event
///   channel notification, or simply returns for a polling or blocking
///   transport). It may fail, e.g. on a timeout, to bound waiting.
pub trait Transport {
    /// What can go wrong below the protocol.
    type Error: core::fmt::Debug;

    /// Writes a prefix of `data`; returns how many bytes were taken.
    fn send(&mut self, data: &[u8]) -> Result<usize, Self::Error>;

    /// Reads up to `buf.len()` bytes; returns how many were read.
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error>;

    /// Blocks until `send` or `recv` may make progress.
    fn wait(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

impl<T: Transport + ?Sized> Transport for &mut T {
    type Error = T::Error;
    fn send(&mut self, data: &[u8]) -> Result<usize, Self::Error> {
        (**self).send(data)
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        (**self).recv(buf)
    }
    fn wait(&mut self) -> Result<(), Self::Error> {
        (**self).wait()
    }
}

/**
 * A lock granted in the order it was asked for: `acquire()` queues at once and resolves with the
 * release function when every earlier holder has released. Releasing twice is harmless.
 */
export class FifoLock {
  private tail: Promise<void> = Promise.resolve();

  acquire(): Promise<() => void> {
    let release!: () => void;
    const mine = new Promise<void>((resolve) => {
      release = () => resolve();
    });
    const before = this.tail;
    this.tail = before.then(() => mine);
    return before.then(() => release);
  }
}

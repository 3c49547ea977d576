import { parentPort } from 'node:worker_threads';
import { deleteLink } from './netlink/links.js';
import { RtnlSocket } from './netlink/socket.js';

/*
 * Body of the LinkReaper's worker thread: deletes the links it is sent, by
 * name, through its own rtnetlink socket (bound to the namespace the thread was
 * started in: the node's). Replies {id} or {id, error}.
 */
const socket = new RtnlSocket();
parentPort!.on('message', (m: { id: number; names: string[] }) => {
  try {
    socket.exec(m.names.map(deleteLink));
    parentPort!.postMessage({ id: m.id });
  } catch (err) {
    parentPort!.postMessage({ id: m.id, error: (err as Error).message });
  }
});

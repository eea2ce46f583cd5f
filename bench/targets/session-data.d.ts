// What the Express peers keep in express-session's session: the type their JavaScript is checked with.
import 'express-session';

declare module 'express-session' {
  interface SessionData {
    user: string;
  }
}

"""SMTP sessions as TCP streams."""
from .net import C, S, TcpConn

BANNER = '220 mx.example.test ESMTP Postfix\r\n'
EHLO_REPLY = ('250-mx.example.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n'
              '250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n')
USER_UNKNOWN = '550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in local recipient table\r\n'


def script(helo='client.example.net', mail_from='alice@example.net', rcpts=(('bob@example.test', '250 2.1.5 Ok\r\n'),),
           data=True, lower=False, banner=BANNER, ehlo_reply=EHLO_REPLY, body=None):
    """A classic one-command-per-segment script: list of (direction, text)."""
    def cmd(s):
        if lower:
            for verb in ('MAIL FROM:', 'RCPT TO:', 'EHLO', 'HELO', 'DATA', 'QUIT'):
                if s.startswith(verb):
                    s = verb.lower() + s[len(verb):]
                    break
        return s + '\r\n'
    sc = [(S, banner), (C, cmd('EHLO ' + helo)), (S, ehlo_reply),
          (C, cmd('MAIL FROM:<%s>' % mail_from)), (S, '250 2.1.0 Ok\r\n')]
    accepted = 0
    for rcpt, reply in rcpts:
        sc += [(C, cmd('RCPT TO:<%s>' % rcpt)), (S, reply.format(rcpt=rcpt))]
        accepted += reply.startswith('250')
    if data and accepted:
        sc += [(C, cmd('DATA')), (S, '354 End data with <CR><LF>.<CR><LF>\r\n'),
               (C, body or ('From: <%s>\r\nTo: <%s>\r\nSubject: test\r\n\r\nhello\r\n.\r\n' % (mail_from, rcpts[0][0]))),
               (S, '250 2.0.0 Ok: queued as 4ABCD1234\r\n')]
    sc += [(C, cmd('QUIT')), (S, '221 2.0.0 Bye\r\n')]
    return sc


def session(conn, sc, splits=None, close=True, handshake=True):
    """Packets (in wire order) for a whole session. splits: {index in sc: [cut offsets]}."""
    out = conn.handshake() if handshake else []
    for i, item in enumerate(sc):
        d, text = item[0], item[1]
        payload = text if isinstance(text, bytes) else text.encode()
        out += conn.data(d, payload, split_at=(splits or {}).get(i))
    if close:
        # server closes after 221, client acks and closes
        out += conn.close(first=S)
    return out

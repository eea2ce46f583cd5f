import { describe, expect, it } from 'vitest';
import { readEnvelopeHead } from '../../../src/protocol/head.js';

describe('readEnvelopeHead (msg_id and ends of a message too large to parse)', () => {
  it('reads src, dest and body.msg_id from a cut-off message, in any key order', () => {
    expect(readEnvelopeHead('{"src":"c1","dest":"g","body":{"type":"create_session","msg_id":7,"user_id":"xxxx')).toEqual({
      src: 'c1',
      dest: 'g',
      body: { msg_id: 7 },
    });
    expect(readEnvelopeHead('{"dest":"g", "src" : "c","body":{"type":"a","u":[1,{"q":"}"}],"msg_id":4,')).toEqual({ src: 'c', dest: 'g', body: { msg_id: 4 } });
    expect(readEnvelopeHead('{"src":"a\\"b","dest":"g","body":{"msg_id":3}}')).toEqual({ src: 'a"b', dest: 'g', body: { msg_id: 3 } });
  });

  it('never guesses: a value cut by the end of the head, or one nested deeper, is not read', () => {
    expect(readEnvelopeHead('{"body":{"msg_id":12')).toEqual({ body: {} });
    expect(readEnvelopeHead('{"body":{"data":{"msg_id":5},"x":"')).toEqual({ body: {} });
    expect(readEnvelopeHead('{"src":"c1","de')).toEqual({ src: 'c1' });
    expect(readEnvelopeHead('not json at all')).toEqual({});
    expect(readEnvelopeHead('')).toEqual({});
    expect(readEnvelopeHead('[1,2,3]')).toEqual({});
    expect(readEnvelopeHead('{"src":1,"dest":"g","body":{"msg_id":"7",')).toEqual({ dest: 'g', body: {} });
  });

  it('reads msg_id only when it is spelled as JSON spells a number: a leading zero, a lone sign or point, or a trailing letter is not read', () => {
    for (const spelled of ['007', '07', '-07', '1.', '.5', '-', '7x', '0x1f', '1e', '+1']) {
      expect(readEnvelopeHead(`{"src":"c","dest":"g","body":{"msg_id":${spelled},"type":"validate_session","session_id":"xxxx`), spelled).toEqual({
        src: 'c',
        dest: 'g',
        body: {},
      });
    }
    for (const [spelled, read] of [
      ['0', 0],
      ['7', 7],
      ['10', 10],
      ['7.0', 7],
      ['1e2', 100],
      ['7 ', 7],
    ] as const) {
      expect(readEnvelopeHead(`{"src":"c","dest":"g","body":{"msg_id":${spelled},"type":"x"`), spelled).toEqual({
        src: 'c',
        dest: 'g',
        body: { msg_id: read },
      });
    }
  });
});
